//! Daemonless OCI image building and publishing for okonomi functions.
