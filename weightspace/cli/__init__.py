"""The `weightspace` console script: one small module per subcommand."""
