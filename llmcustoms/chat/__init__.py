"""Loading a base model with an adapter and generating answers, streamed."""
