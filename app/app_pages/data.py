"""Data: ask a dataset a question in plain English; see the answer, the SQL or code, a table and a chart."""

from __future__ import annotations

from typing import Any

import streamlit as st
from ui_kit.session import current_user

from agentops import service
from agentops.errors import AgentOpsError

# printf formats for st.column_config.NumberColumn, as the answer's sentence writes numbers (a bare string here
# would be drawn on the page by Streamlit's magic).
NUMBER_FORMATS = {"money": "%,.2f", "integer": "%,d", "number": "%,.2f", "percent": "%.1f%%"}
DATE_FORMATS = {"date": "YYYY-MM-DD", "month": "YYYY-MM"}


def column_config(formats: dict[str, str], headers: dict[str, str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name, fmt in formats.items():
        label = headers.get(name, name)
        if fmt in NUMBER_FORMATS:
            config[name] = st.column_config.NumberColumn(label, format=NUMBER_FORMATS[fmt])
        elif fmt in DATE_FORMATS:
            config[name] = st.column_config.DateColumn(label, format=DATE_FORMATS[fmt])
        else:
            config[name] = st.column_config.TextColumn(label)
    return config


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
    if result.get("altair_chart") is not None:
        st.altair_chart(result["altair_chart"], width="stretch", key="data-chart")
    elif result.get("chart_png"):
        st.image(result["chart_png"], caption="chart")
    if result.get("dated_table"):
        st.dataframe(result["dated_table"], hide_index=True, width="stretch", key="data-table",
                     column_order=result["columns"],
                     column_config=column_config(result.get("formats", {}), result.get("headers", {})))
        if result.get("truncated"):
            st.caption(f"The first {len(result['dated_table']):,} of {result['rows']:,} rows.")
    if result.get("sql"):
        st.code(result["sql"], language="sql", wrap_lines=True)
    if result.get("code"):
        st.code(result["code"], language="python", wrap_lines=True)
