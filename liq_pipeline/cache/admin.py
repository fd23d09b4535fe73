"""Operations on one market's keys: list them with their memory, or flush them (and nothing else)."""

from __future__ import annotations

from .context import MarketCache


def market_keys(cache: MarketCache) -> list[str]:
    """Every key of the market, by SCAN (never KEYS: it would block a shared server)."""
    return sorted(key.decode() for key in cache.client.scan_iter(match=cache.keys.pattern, count=1000))


def memory_by_key(cache: MarketCache) -> dict[str, int]:
    """Bytes per key as Redis counts them (MEMORY USAGE, all nested values sampled)."""
    return {key: int(cache.client.memory_usage(key, samples=0) or 0) for key in market_keys(cache)}


def flush_market(cache: MarketCache) -> int:
    """Delete every key of this market (UNLINK: freed in the background); other markets are untouched."""
    keys = market_keys(cache)
    for start in range(0, len(keys), cache.options.max_pipeline):
        cache.client.unlink(*keys[start : start + cache.options.max_pipeline])
    return len(keys)
