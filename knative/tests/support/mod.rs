//! Helpers shared by the knative test binaries (each binary uses a part).

pub mod schema;
