//! The console as the chat test drives it over HTTP: a visitor keeping its
//! cookies, the form token of a page, an element's text, and the events of
//! the chat's stream.

use std::collections::HashMap;

use reqwest::Client;

use crate::common::Server;

/// A console visitor: cookies kept by hand, redirects not followed.
pub struct Visitor<'a> {
    pub server: &'a Server,
    pub client: Client,
    pub cookies: HashMap<String, String>,
}

impl Visitor<'_> {
    fn cookie(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join("; ")
    }

    fn keep(&mut self, response: &reqwest::Response) {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap_or("");
            if let Some((name, value)) = text.split(';').next().and_then(|p| p.split_once('=')) {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(format!("{}{path}", self.server.address))
            .header("cookie", self.cookie())
            .send()
            .await
            .expect("GET sent");
        self.keep(&r);
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// A form post; `accept` as `console.js` sends it for the chat.
    pub async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        accept: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.server.address))
            .header("cookie", self.cookie())
            .form(form);
        if let Some(accept) = accept {
            request = request
                .header("accept", accept)
                .header("x-console-live", "1");
        }
        let r = request.send().await.expect("POST sent");
        self.keep(&r);
        r
    }
}

pub fn csrf(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..].split('"').next().unwrap_or("").to_owned()
}

pub fn text_of(page: &str, id: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("#{id} in {page}"));
    let rest = &page[at + id.len() + 6..];
    rest.split('<').next().unwrap_or("").to_owned()
}

/// The events of a console stream: (name, JSON data).
pub fn events(stream: &str) -> Vec<(String, serde_json::Value)> {
    stream
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_owned();
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (
                name,
                serde_json::from_str(data).expect("one JSON data line"),
            )
        })
        .collect()
}
