//! The hello sample's frontend: `GET /?name=Ada&lang=en,fr&style=shout`
//! asks the greeter component and answers with one line per language.

wit_bindgen::generate!({
    path: ["../../../wit/deps/config", "../../../wit/deps/logging", "../wit"],
    world: "demo:hello/frontend-component",
});

use demo::hello::greeter::{Problem, Request, Style, greet};
use guest_http::respond;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Frontend;

fn style(text: Option<&str>) -> Result<Option<Style>, String> {
    Ok(match text {
        None | Some("") => None,
        Some("plain") => Some(Style::Plain),
        Some("shout") => Some(Style::Shout),
        Some(other) => match other.strip_prefix("repeat") {
            Some(n) => Some(Style::Repeat(
                n.parse().map_err(|_| format!("bad repeat count '{n}'"))?,
            )),
            None => {
                return Err(format!(
                    "unknown style '{other}'; use plain, shout or repeatN"
                ));
            }
        },
    })
}

impl wasip2::exports::http::incoming_handler::Guest for Frontend {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let req = guest_http::Request::of(&request);
        if req.path != "/" {
            return respond(out, 404, "text/plain", b"try /?name=Ada&lang=en,fr\n");
        }
        let style = match style(req.param("style")) {
            Ok(s) => s,
            Err(e) => return respond(out, 400, "text/plain", format!("{e}\n").as_bytes()),
        };
        let request = Request {
            name: req.param("name").unwrap_or("world").to_string(),
            languages: req
                .param("lang")
                .map(|l| l.split(',').map(str::to_string).collect())
                .unwrap_or_default(),
            style,
        };
        match greet(&request) {
            Ok(greetings) => {
                let body: String = greetings
                    .iter()
                    .map(|g| format!("{}: {}\n", g.language, g.text))
                    .collect();
                respond(out, 200, "text/plain; charset=utf-8", body.as_bytes());
            }
            Err(Problem::EmptyName) => respond(out, 400, "text/plain", b"name must not be empty\n"),
            Err(Problem::UnknownLanguage(l)) => respond(
                out,
                400,
                "text/plain",
                format!("unknown language '{l}'\n").as_bytes(),
            ),
        }
    }
}

wasip2::http::proxy::export!(Frontend);
