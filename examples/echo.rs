//! The WebSocket baseline of the benchmarks: a minimal echo server on the same stack as Rampart
//! (actix-web, one `actix-web-actors` actor per connection, the same worker count, the same
//! allocator) with no security logic: no authentication, no limits, no JSON parsing. Every text
//! frame comes back unchanged, so the load generator's ping `{"type":"ping","id":N}` returns as
//! its own "pong".
//! Like Rampart it raises its open-file limit and takes the same per-worker connection cap and
//! accept queue, so the two hold the same number of connections.
//!
//! `cargo run --release --example echo -- --bind 127.0.0.1:9001`; prints
//! `echo listening on http://<addr>` once bound (port 0 picks a free port).

use actix::{Actor, StreamHandler};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use actix_web_actors::ws;
use clap::Parser;

/// Rampart's allocator (src/main.rs): the baseline runs on the same stack, allocator included,
/// so a ratio shows Rampart's own work rather than the allocator's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(about = "Minimal actix WebSocket echo server (benchmark baseline)")]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:9001")]
    bind: std::net::SocketAddr,
    /// Worker threads; default: one per core, as Rampart.
    #[arg(long)]
    workers: Option<usize>,
    /// Open connections per worker (Rampart's RAMPART_WORKER_MAX_CONNECTIONS, same default).
    #[arg(long, default_value_t = 25_000)]
    max_connections: usize,
    /// The listening socket's accept queue (Rampart's RAMPART_LISTEN_BACKLOG).
    #[arg(long, default_value_t = 2048)]
    backlog: u32,
}

struct Echo;

impl Actor for Echo {
    type Context = ws::WebsocketContext<Self>;
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for Echo {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        match msg {
            Ok(ws::Message::Text(text)) => ctx.text(text),
            Ok(ws::Message::Binary(bin)) => ctx.binary(bin),
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                actix::ActorContext::stop(ctx);
            }
            Ok(_) => {}
            Err(_) => actix::ActorContext::stop(ctx),
        }
    }
}

async fn upgrade(req: HttpRequest, stream: web::Payload) -> actix_web::Result<HttpResponse> {
    ws::start(Echo, &req, stream)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    // As Rampart does at start-up: the soft open-file limit up to the hard one.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    let server = HttpServer::new(|| App::new().route("/ws", web::get().to(upgrade)))
        .workers(workers)
        .max_connections(args.max_connections)
        .backlog(args.backlog)
        .bind(args.bind)?;
    let addr = server.addrs()[0];
    println!("echo listening on http://{addr}");
    server.run().await
}
