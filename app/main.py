"""The agentops review and approval app. `agentops ui` (or `agentops serve`) starts it through app/server.py.

Pages live in app/app_pages/ and hold UI only; they call agentops.service. Each page has a URL that opens it
after the login (/approvals?request=ID, /runs?run=ID, /chat?conversation=ID).
"""

from __future__ import annotations

import streamlit as st
from ui_kit.session import bootstrap, current_user, login_page, sidebar_account

st.set_page_config(page_title="agentops", page_icon="🛡️", layout="wide")
bootstrap()
PAGES = {
    "Review": [("app_pages/approvals.py", "Approvals", ":material/approval:", "approvals"),
               ("app_pages/runs.py", "Runs", ":material/list_alt:", "runs"),
               ("app_pages/chat.py", "Chat", ":material/chat:", "chat"),
               ("app_pages/audit.py", "Audit", ":material/verified_user:", "audit")],
    "Automation": [("app_pages/schedules.py", "Schedules", ":material/schedule:", "schedules"),
                   ("app_pages/data.py", "Data", ":material/query_stats:", "data")],
    "Embedded backends": [("app_pages/backends.py", "Outbox, tickets, cluster", ":material/dns:", "backends")],
}

user = current_user()

if user is None:
    # A tab whose session ended (logged out here or elsewhere, expired) keeps its URL: every page's path shows the
    # login prompt, hidden, so no page of the app is drawn and none is "not found".
    paths = ["home", *(path for section in PAGES.values() for *_, path in section)]
    st.navigation([st.Page(login_page, title="Log in", url_path=path, default=path == "home") for path in paths],
                  position="hidden").run()
else:
    sidebar_account(user)
    pages = {section: [st.Page(script, title=title, icon=icon, url_path=path) for script, title, icon, path in rows]
             for section, rows in PAGES.items()}
    inbox = pages["Review"][0]

    def home() -> None:
        """/ opens the inbox at its own URL, so /approvals (and a link to one request) is a page, not a miss."""
        st.switch_page(inbox, query_params=st.query_params.to_dict())

    pages["Review"].insert(0, st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"))
    st.navigation(pages).run()
