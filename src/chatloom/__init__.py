"""chatloom: an agentic chatbot framework."""

__version__ = "0.1.0"
