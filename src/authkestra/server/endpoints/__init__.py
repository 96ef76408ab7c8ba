"""HTTP endpoints: thin adapters between Starlette and the grant logic."""
