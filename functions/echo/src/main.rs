//! echo: a CloudEvents function that answers with the event's data under a new type and source.

fn main() {}
