//! Merging the `okonomi` context into a kubeconfig file.
