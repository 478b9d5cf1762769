"""Reference implementations and fixtures that tests (and benchmarks) compare against."""
