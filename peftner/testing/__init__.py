"""Test tooling shipped with the package, so tests of projects that build on peftner can use it too:
tiny random models of every supported architecture (:mod:`~peftner.testing.tiny`), the architecture ×
method support matrix (:mod:`~peftner.testing.support`), and the transformers-pipeline tag mapping
the parity tests and the serving benchmark compare against (:mod:`~peftner.testing.pipeline_tags`)."""
