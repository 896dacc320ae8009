from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg
from pydantic import PrivateAttr

from signals_assets.grouping.decisions import LLMProvider, OfflineProvider, Provider
from signals_assets.grouping.limits import POOL_LIMIT

if TYPE_CHECKING:
    from signals_assets.llm.client import Outage


class LLMResource(dg.ConfigurableResource):
    """Who makes the judgement calls — grouping decisions, the signal safety filter and the report
    judgement: `offline` (default, deterministic, no network) or `openai` (any OpenAI-compatible chat
    server: set `base_url` for vLLM, Ollama…)."""

    provider: str = "offline"
    model: str = "gpt-4.1-mini"
    base_url: str = ""
    api_key: str = ""
    timeout_seconds: float = 60
    max_retries: int = 3
    merge_proposals: int = 10  # report merges the model is asked to confirm per batch and team; 0: none
    # newest pooled signals re-clustered (offline) or offered for merges (openai) per batch and team
    consolidation_pool: int = POOL_LIMIT
    # one per resource instance (a run's process): a server found unreachable is not waited for again by each
    # report of the run (llm/client.py `Outage`)
    _outage: Outage | None = PrivateAttr(default=None)

    def chat(self):
        """The chat client (an `OpenAIChatProvider`), or None for the offline provider."""
        if self.provider == "offline":
            return None
        if self.provider == "openai":
            from signals_assets.grouping.llm_decisions import OpenAIChatProvider
            from signals_assets.llm.client import Outage

            if self._outage is None:
                self._outage = Outage()
            # base_url is as set when read through EnvVar (a URL with a password); the settings strip it
            return OpenAIChatProvider(
                self.base_url.strip() or None,
                self.api_key,
                self.model,
                timeout_seconds=self.timeout_seconds,
                max_retries=self.max_retries,
                outage=self._outage,
            )
        raise ValueError(f"LLM provider {self.provider!r} is not one of offline, openai")

    def grouping(self) -> Provider:
        from dataclasses import replace

        chat = self.chat()
        provider = OfflineProvider() if chat is None else LLMProvider(chat, self.merge_proposals)
        if provider.consolidation:  # the pool's bound, whoever decides the merges
            provider.consolidation = replace(provider.consolidation, pool_limit=self.consolidation_pool)
        return provider

    def safety_judge(self):
        """`check_signal(text)` and `check_report(texts)`: the offline rules or the chat model."""
        chat = self.chat()
        if chat is None:
            from signals_assets.safety.filter import OfflineSafetyJudge

            return OfflineSafetyJudge()
        from signals_assets.llm.review import LLMSafetyJudge

        return LLMSafetyJudge(chat)
