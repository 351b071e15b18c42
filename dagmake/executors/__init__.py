"""How a step's command runs: the `Executor` interface (`base`) and its implementations
(`local`: processes on this machine; `fake`: scripted outcomes, for tests)."""
