"""jaxser: trustworthy cross-corpus speech emotion recognition benchmarks in JAX.

Import what you need from the submodules (`jaxser.corpora`, `jaxser.encoders`, `jaxser.embed`,
`jaxser.protocol`, `jaxser.train`, `jaxser.metrics`, `jaxser.significance`, `jaxser.study`);
nothing heavy (JAX, TensorFlow, torch) is imported by `import jaxser` itself.
"""
__version__ = "0.1.0"
