"""adrs: AI-driven research for systems. Evolve systems algorithms with LLMs and simulators."""

__version__ = "0.1.0"
