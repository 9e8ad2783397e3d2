//! counter: the hands-on's Redis hit counter, as an okonomi function.

fn main() {}
