"""The agentops review and approval app. `agentops ui` (or `agentops serve`) starts it through app/server.py.

Pages live in app/app_pages/ and hold UI only; they call agentops.service. Each page has a URL that opens it
after the login (/approvals?request=ID, /runs?run=ID, /chat?conversation=ID).
"""

from __future__ import annotations

import streamlit as st
from ui_kit.session import bootstrap, current_user, login_page, sidebar_account

st.set_page_config(page_title="agentops", page_icon="🛡️", layout="wide")
bootstrap()
user = current_user()

if user is None:
    login_page()
else:
    sidebar_account(user)
    inbox = st.Page("app_pages/approvals.py", title="Approvals", icon=":material/approval:", url_path="approvals")

    def home() -> None:
        """/ opens the inbox at its own URL, so /approvals (and a link to one request) is a page, not a miss."""
        st.switch_page(inbox, query_params=st.query_params.to_dict())

    pages = {
        "Review": [
            st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"),
            inbox,
            st.Page("app_pages/runs.py", title="Runs", icon=":material/list_alt:", url_path="runs"),
            st.Page("app_pages/chat.py", title="Chat", icon=":material/chat:", url_path="chat"),
            st.Page("app_pages/audit.py", title="Audit", icon=":material/verified_user:", url_path="audit"),
        ],
        "Automation": [
            st.Page("app_pages/schedules.py", title="Schedules", icon=":material/schedule:", url_path="schedules"),
            st.Page("app_pages/data.py", title="Data", icon=":material/query_stats:", url_path="data"),
        ],
        "Embedded backends": [
            st.Page("app_pages/backends.py", title="Outbox, tickets, cluster", icon=":material/dns:",
                    url_path="backends"),
        ],
    }
    st.navigation(pages).run()
