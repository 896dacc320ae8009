import dagster as dg

from signals_assets.providers import LLMProvider, OfflineProvider, Provider


class GroupingProviderResource(dg.ConfigurableResource):
    """Who decides matches: `offline` (default, deterministic, no network) or `openai` (any
    OpenAI-compatible chat server: set `base_url` for vLLM, Ollama…)."""

    provider: str = "offline"
    model: str = "gpt-4.1-mini"
    base_url: str = ""
    api_key: str = ""
    timeout_seconds: float = 60
    max_retries: int = 3

    def build(self) -> Provider:
        if self.provider == "offline":
            return OfflineProvider()
        if self.provider == "openai":
            from signals_assets.openai_provider import OpenAIChatProvider

            return LLMProvider(OpenAIChatProvider(self.base_url or None, self.api_key, self.model,
                                                  timeout_seconds=self.timeout_seconds, max_retries=self.max_retries))
        raise ValueError(f"grouping provider {self.provider!r} is not one of offline, openai")
