//! hello: the seed app of the GKE hands-on, as an okonomi function.
//!
//! `GET /` answers `Hello Container World! ('Linux', '<nodename>', '<release>',
//! '<version>', '<machine>')`, the line the hands-on's Flask app printed from
//! Python's `os.uname()`.

mod uname;

use okonomi::{IntoResponse, Request};

async fn hello(_req: Request) -> impl IntoResponse {
    uname::hello_line()
}

#[tokio::main]
async fn main() -> Result<(), okonomi::Error> {
    okonomi::serve(okonomi::handler(hello)).await
}
