"""Look inside the models: traces of Q, K, V, scores, probabilities and value vectors."""

from attnlab.inspect.trace import AttentionRecord, Trace, trace

__all__ = ["AttentionRecord", "Trace", "trace"]
