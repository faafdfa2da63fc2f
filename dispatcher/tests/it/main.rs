//! The dispatcher in one process with real swarms on 127.0.0.1, real nodes and a real anvil.

mod refused_batch;
