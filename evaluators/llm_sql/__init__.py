"""LLM-SQL: reorder table rows and each row's fields so LLM prompts share long prefixes."""

from adrs.evaluators.llm_sql.evaluator import evaluate

__all__ = ["evaluate"]
