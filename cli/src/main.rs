//! The okonomi command line.

fn main() {}
