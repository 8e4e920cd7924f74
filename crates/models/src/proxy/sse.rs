//! Reading a relayed stream without holding it: server-sent events are
//! scanned line by line as the chunks pass (a partial line is kept until its
//! end, at most [`MAX_LINE`] bytes), only to find the usage the upstream
//! reports and whether any answer went out. The chunks themselves are
//! relayed untouched. Also the usage of a non-streamed answer.

use serde::Deserialize;

use crate::cost::Usage;

/// Longest line kept while looking for its end; a longer one is skipped.
pub(crate) const MAX_LINE: usize = 1024 * 1024;

/// What the scan has found so far.
#[derive(Debug, Default)]
pub(crate) struct Scanner {
    line: Vec<u8>,
    skipping: bool,
    /// The last usage reported.
    pub usage: Option<Usage>,
    /// A chunk with a `delta` (some of the answer) passed.
    pub answered: bool,
    /// `data: [DONE]` passed.
    pub done: bool,
}

impl Scanner {
    /// Scans the next chunk of the stream.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) {
        while !chunk.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    if !self.skipping {
                        self.push(&chunk[..end]);
                        if !self.skipping {
                            let line = std::mem::take(&mut self.line);
                            self.line_done(&line);
                        }
                    }
                    self.line.clear();
                    self.skipping = false;
                    chunk = &chunk[end + 1..];
                }
                None => {
                    if !self.skipping {
                        self.push(chunk);
                    }
                    return;
                }
            }
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > MAX_LINE {
            self.line.clear();
            self.skipping = true;
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        if contains(data, b"\"delta\"") {
            self.answered = true;
        }
        if contains(data, b"\"usage\"") {
            if let Some(usage) = usage_of(data) {
                self.usage = Some(usage);
            }
        }
    }
}

/// The usage in a chat completion (or chunk) body, if it reports one.
pub(crate) fn usage_of(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Body {
        usage: Option<Wire>,
    }
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        prompt_tokens: u64,
        #[serde(default)]
        completion_tokens: u64,
        prompt_tokens_details: Option<Details>,
    }
    #[derive(Deserialize)]
    struct Details {
        cached_tokens: Option<u64>,
    }
    let body: Body = serde_json::from_slice(body).ok()?;
    let wire = body.usage?;
    Some(Usage {
        prompt_tokens: wire.prompt_tokens,
        completion_tokens: wire.completion_tokens,
        cached_tokens: wire
            .prompt_tokens_details
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
        data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n\
        data: [DONE]\n\n";

    #[test]
    fn the_usage_is_found_however_the_stream_is_cut_into_chunks() {
        let bytes = STREAM.as_bytes();
        for size in [1, 2, 7, 64, bytes.len()] {
            let mut scanner = Scanner::default();
            for chunk in bytes.chunks(size) {
                scanner.feed(chunk);
            }
            assert_eq!(
                scanner.usage,
                Some(Usage {
                    prompt_tokens: 12,
                    completion_tokens: 3,
                    cached_tokens: 4
                }),
                "chunks of {size}"
            );
            assert!(scanner.answered && scanner.done);
        }
    }

    #[test]
    fn an_overlong_line_is_skipped_and_the_next_one_read() {
        let mut scanner = Scanner::default();
        scanner.feed(b"data: ");
        scanner.feed(&vec![b'x'; MAX_LINE + 1]);
        scanner.feed(b"\ndata: [DONE]\n");
        assert!(scanner.done);
        assert!(scanner.line.is_empty());
    }

    #[test]
    fn crlf_lines_and_null_usage_are_read() {
        let mut scanner = Scanner::default();
        scanner.feed(b"data: {\"choices\":[{\"delta\":{}}],\"usage\":null}\r\n\r\n");
        assert!(scanner.answered);
        assert_eq!(scanner.usage, None);
    }
}
