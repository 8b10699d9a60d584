"""The app's server: Streamlit's own ASGI app (`st.App`) with the login routes beside it on the same origin.

`agentops ui` and `agentops serve` run `streamlit run app/server.py`; Streamlit finds `app` below and serves
main.py with the extra routes and the middleware that sends a page load without a session to the login.
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware
from ui_kit.login_routes import LoginRequired, routes

app = st.App("main.py", routes=routes(), middleware=[Middleware(LoginRequired)])
