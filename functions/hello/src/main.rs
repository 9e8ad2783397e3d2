//! hello: the seed app of the GKE hands-on, as an okonomi function.

fn main() {}
