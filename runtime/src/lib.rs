//! The okonomi function runtime: HTTP and CloudEvents handlers served under the Knative runtime contract.
