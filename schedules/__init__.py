"""Time and policy: what is due when, the cancellation rules and campaigns."""
