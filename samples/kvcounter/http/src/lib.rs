//! The kvcounter sample's HTTP side: `GET /counter/NAME` increments the
//! counter NAME and answers `{"counter":"NAME","value":N}`;
//! `GET /counter/NAME?peek` reads it without incrementing.

wit_bindgen::generate!({
    path: ["../../../wit/deps/keyvalue", "../wit"],
    world: "demo:kvcounter/http-component",
});

use demo::kvcounter::counter;
use guest_http::respond;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Http;

fn is_counter_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl wasip2::exports::http::incoming_handler::Guest for Http {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let req = guest_http::Request::of(&request);
        let Some(name) = req.path.strip_prefix("/counter/") else {
            return respond(out, 404, "text/plain", b"try GET /counter/NAME\n");
        };
        if !is_counter_name(name) {
            return respond(
                out,
                400,
                "text/plain",
                b"a counter name has 1 to 64 letters, digits, '-' or '_'\n",
            );
        }
        let peek = req.query.iter().any(|(k, _)| k == "peek");
        let result = if peek {
            counter::get(name)
        } else {
            counter::increment(name, 1)
        };
        match result {
            Ok(value) => {
                let body = format!("{{\"counter\":\"{name}\",\"value\":{value}}}\n");
                respond(out, 200, "application/json", body.as_bytes());
            }
            Err(e) => respond(out, 500, "text/plain", format!("{e}\n").as_bytes()),
        }
    }
}

wasip2::http::proxy::export!(Http);
