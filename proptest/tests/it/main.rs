//! machi-proptest's one test binary.

mod faults;
mod hostile;
mod model_based;
mod signatures;
