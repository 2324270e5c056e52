"""The domain: who is trained, what they are asked, and what they answered."""
