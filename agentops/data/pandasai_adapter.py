"""pandasai 3 writes the code, through our LangChain chat model; the sandbox (not pandasai's exec) runs it.

pandasai's own LangChain and OpenAI bridges pin langchain<0.2 and openai<2, so `LangChainLLM` implements
pandasai's `LLM` interface over any LangChain `BaseChatModel`. From pandasai we use the prompt (the table's
schema and head, the `execute_sql_query` contract, the `result` convention), its code extraction, and its
code cleaner (which refuses SQL naming tables other than the dataset's). We skip pandasai's Agent: it creates
exports/charts under the working directory, configures root logging, and would run the code with plain exec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agentops.errors import AgentOpsError

os.environ["SCARF_NO_ANALYTICS"] = "true"  # before pandasai is imported: its logger module phones home otherwise
os.environ["DO_NOT_TRACK"] = "true"

from pandasai.agent.state import AgentState
from pandasai.config import Config
from pandasai.core.code_generation.code_cleaning import CodeCleaner
from pandasai.core.prompts import get_chat_prompt_for_sql
from pandasai.dataframe.base import DataFrame as PandasAIFrame
from pandasai.helpers.memory import Memory
from pandasai.llm.base import LLM

if TYPE_CHECKING:
    import pandas as pd
    from pandasai.core.prompts.base import BasePrompt

SYSTEM_PROMPT = ("You write Python that answers a question about one table. Use the provided execute_sql_query "
                 "function (DuckDB SQL) for aggregation, and reply with a single ```python code block that sets "
                 "`result`. Never read or write files other than charts, never use the network or the environment.")


class CodeGenerationError(AgentOpsError):
    """The model's reply held no usable code, or the code queried tables other than the dataset."""


class LangChainLLM(LLM):
    """pandasai's LLM interface over a LangChain chat model. Remembers the last reply and the model's name."""

    def __init__(self, chat_model: BaseChatModel) -> None:
        super().__init__(api_key=None)
        self.chat_model = chat_model
        self.last_reply: AIMessage | None = None

    @property
    def type(self) -> str:
        return "agentops-langchain"

    @property
    def model_name(self) -> str:
        meta = (self.last_reply.response_metadata or {}) if self.last_reply else {}
        return str(meta.get("model_name") or getattr(self.chat_model, "model_name", None)
                   or getattr(self.chat_model, "_llm_type", "model"))

    def call(self, instruction: BasePrompt, context: AgentState | None = None) -> str:
        prompt = instruction.to_string()
        self.last_prompt = prompt
        reply = self.chat_model.invoke([SystemMessage(SYSTEM_PROMPT), HumanMessage(prompt)])
        self.last_reply = reply if isinstance(reply, AIMessage) else AIMessage(content=str(reply))
        return _text(self.last_reply)


def _text(message: AIMessage) -> str:
    content = message.content
    if isinstance(content, list):
        return "".join(part.get("text", "") if isinstance(part, dict) else str(part) for part in content)
    return str(content)


class _Preview(PandasAIFrame):
    """The first rows of a dataset, reporting the whole dataset's row count in the prompt."""

    _metadata = [*PandasAIFrame._metadata, "total_rows"]

    @property
    def rows_count(self) -> int:
        return int(getattr(self, "total_rows", len(self)))


@dataclass(frozen=True)
class GeneratedCode:
    code: str
    """Cleaned by pandasai: table names checked, chart paths rewritten to exports/charts/."""
    prompt: str
    reply: str
    model: str


def generate_code(question: str, head: pd.DataFrame, *, table: str, total_rows: int,
                  model: BaseChatModel) -> GeneratedCode:
    """Ask the model, through pandasai's prompt, for code answering `question` over `table`."""
    frame = _Preview(head, _table_name=table)
    frame.total_rows = total_rows
    llm = LangChainLLM(model)
    state = AgentState(dfs=[frame], _config=Config(llm=llm, save_logs=False, verbose=False, max_retries=0))
    state.skills = []
    state.memory = Memory(memory_size=1)
    state.memory.add(question, is_user=True)
    prompt = get_chat_prompt_for_sql(state)
    try:
        raw = llm.generate_code(prompt, state)
        code = CodeCleaner(state).clean_code(raw)
    except Exception as exc:
        detail = " ".join(str(exc).split())
        if llm.last_reply is None:
            raise CodeGenerationError(f"the model call failed: {type(exc).__name__}: {detail[:300]}") from None
        raise CodeGenerationError(f"no usable code in the model's reply ({type(exc).__name__}: {detail[:200]}); "
                                  f"reply began: {_text(llm.last_reply)[:120]!r}") from None
    return GeneratedCode(code=code, prompt=str(llm.last_prompt), reply=_text(llm.last_reply or AIMessage("")),
                         model=llm.model_name)

