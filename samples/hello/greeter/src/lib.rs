//! The hello sample's greeter: greets a name in several languages.

wit_bindgen::generate!({
    path: ["../../../wit/deps/config", "../../../wit/deps/logging", "../wit"],
    world: "demo:hello/greeter-component",
    generate_all,
});

use exports::demo::hello::greeter::{Greeting, Guest, Problem, Request, Style};
use wasi::logging::logging::{Level, log};

struct Greeter;

fn word(language: &str) -> Option<String> {
    match language {
        // The English word is configurable, to show wasi:config.
        "en" => Some(
            wasi::config::store::get("greeting")
                .ok()
                .flatten()
                .unwrap_or_else(|| "Hello".into()),
        ),
        "fr" => Some("Bonjour".into()),
        "es" => Some("Hola".into()),
        "de" => Some("Hallo".into()),
        _ => None,
    }
}

impl Guest for Greeter {
    fn greet(req: Request) -> Result<Vec<Greeting>, Problem> {
        let name = req.name.trim();
        if name.is_empty() {
            return Err(Problem::EmptyName);
        }
        let languages = if req.languages.is_empty() {
            vec!["en".to_string()]
        } else {
            req.languages
        };
        let mut greetings = Vec::new();
        for language in languages {
            let word = word(&language).ok_or_else(|| Problem::UnknownLanguage(language.clone()))?;
            let plain = format!("{word}, {name}!");
            let text = match req.style {
                None | Some(Style::Plain) => plain,
                Some(Style::Shout) => plain.to_uppercase(),
                Some(Style::Repeat(n)) => vec![plain; usize::from(n.max(1))].join(" "),
            };
            greetings.push(Greeting { language, text });
        }
        log(
            Level::Info,
            "greet",
            &format!("greeted {name} in {} language(s)", greetings.len()),
        );
        Ok(greetings)
    }
}

export!(Greeter);
