"""One module per surface (console, markdown, feeds, slack, telegram): thin translators."""
