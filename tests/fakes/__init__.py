"""HTTP-level fakes of arXiv, OpenAI, Slack and Telegram, served on 127.0.0.1 for tests."""
