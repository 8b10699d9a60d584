"""Data: ask a dataset a question in plain English; see the answer, the SQL or code, a table and a chart."""

from __future__ import annotations

import streamlit as st
from ui_kit.session import current_user

from agentops import service
from agentops.errors import AgentOpsError

user = current_user()
assert user is not None
st.title("Ask the data")
datasets = service.list_datasets()
if not datasets:
    st.info("No datasets under data/ yet. `agentops init` writes the sample sales data.")
    st.stop()
with st.form("data-ask"):
    dataset = st.selectbox("Dataset", datasets, key="data-dataset")
    question = st.text_input("Question", value="top 5 products by revenue", key="data-question")
    asked = st.form_submit_button("Ask", key="data-ask-submit")
st.caption("Without a model, these shapes are answered through DuckDB: top N X by Y · Y by month · "
           "which X is below average on Y.")
if asked:
    try:
        result = service.ask_data(dataset, question, user=user.name)
    except AgentOpsError as exc:
        st.error(str(exc))
        st.stop()
    st.markdown(f"**{result['answer']}**")
    if result.get("table"):
        st.dataframe(result["table"], hide_index=True, width="stretch", key="data-table")
    if result.get("chart_png"):
        st.image(result["chart_png"], caption="chart")
    if result.get("sql"):
        st.code(result["sql"], language="sql")
    if result.get("code"):
        st.code(result["code"], language="python")
