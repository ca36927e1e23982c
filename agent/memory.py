"""Conversation memory: what a follow-up question ("and only for 2012?") needs to see.

Owns the list of previous exchanges (question, final SQL, result shape) of one conversation and how
they are summarised for the next ``generate_sql`` call. ``clear()`` starts a new conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlr1.agent.trace import Answer

__all__ = ["Conversation", "Exchange"]


@dataclass(frozen=True)
class Exchange:
    question: str
    sql: str | None
    columns: tuple[str, ...] = ()
    row_count: int | None = None
    truncated: bool = False
    error: str | None = None

    @classmethod
    def from_answer(cls, answer: Answer) -> Exchange:
        result = answer.result
        return cls(
            question=answer.question,
            sql=answer.sql,
            columns=tuple(c.name for c in result.columns) if result else (),
            row_count=result.row_count if result else None,
            truncated=result.truncated if result else False,
            error=str(answer.error) if answer.error else None,
        )

    def shape(self) -> str:
        """The result as a model should remember it: its shape, never its data."""
        if self.error:
            return f"It failed with: {self.error}"
        if self.row_count is None:
            return "It was not executed."
        more = " (truncated)" if self.truncated else ""
        cols = ", ".join(self.columns)
        return f"It returned {self.row_count} row(s){more} with columns: {cols}."


@dataclass
class Conversation:
    """The exchanges of one conversation, oldest first."""

    exchanges: list[Exchange] = field(default_factory=list)
    max_turns: int = 3

    def add(self, answer: Answer) -> None:
        if answer.status != "cancelled":
            self.exchanges.append(Exchange.from_answer(answer))

    def add_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    def clear(self) -> None:
        self.exchanges.clear()

    def recent(self) -> list[Exchange]:
        return self.exchanges[-self.max_turns :] if self.max_turns > 0 else []

    def __len__(self) -> int:
        return len(self.exchanges)
