//! A small JSON parser that keeps the byte offset of every key and value, so that network.json
//! diagnostics can give line and column for nested keys (serde_json cannot). Duplicate keys are
//! kept (the caller reports them). Nesting is limited to [`MAX_DEPTH`] so hostile input cannot
//! overflow the stack.

/// Deepest nesting accepted.
pub(crate) const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J {
    Null,
    Bool(bool),
    /// The number's text, already checked against the JSON grammar.
    Num(String),
    Str(String),
    Arr(Vec<(J, usize)>),
    Obj(Vec<Member>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Member {
    pub key: String,
    pub key_off: usize,
    pub val: J,
    pub val_off: usize,
}

impl J {
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "a boolean",
            J::Num(_) => "a number",
            J::Str(_) => "a string",
            J::Arr(_) => "an array",
            J::Obj(_) => "an object",
        }
    }

    /// Converts to a serde_json value (object keys keep their order; a duplicate key keeps the
    /// last value, as serde_json does).
    pub(crate) fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            J::Null => Value::Null,
            J::Bool(b) => Value::Bool(*b),
            J::Num(n) => n.parse::<serde_json::Number>().map_or(Value::Null, Value::Number),
            J::Str(s) => Value::String(s.clone()),
            J::Arr(a) => Value::Array(a.iter().map(|(v, _)| v.to_value()).collect()),
            J::Obj(m) => {
                Value::Object(m.iter().map(|mem| (mem.key.clone(), mem.val.to_value())).collect())
            }
        }
    }
}

/// A syntax error at a byte offset.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

struct P<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

type R<T> = Result<T, SyntaxError>;

impl P<'_> {
    fn err<T>(&self, offset: usize, message: impl Into<String>) -> R<T> {
        Err(SyntaxError { offset, message: message.into() })
    }
    fn ws(&mut self) {
        while let Some(b) = self.s.get(self.i) {
            if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn expect(&mut self, b: u8, what: &str) -> R<()> {
        self.ws();
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            let found = self.describe();
            self.err(self.i, format!("expected {what}, found {found}"))
        }
    }
    fn describe(&self) -> String {
        match self.text.get(self.i..).and_then(|t| t.chars().next()) {
            None => "end of file".to_string(),
            Some(c) => format!("'{c}'"),
        }
    }

    fn value(&mut self, depth: usize) -> R<J> {
        self.ws();
        if depth > MAX_DEPTH {
            return self.err(self.i, format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(J::Str(self.string()?)),
            Some(b't') => self.literal("true", J::Bool(true)),
            Some(b'f') => self.literal("false", J::Bool(false)),
            Some(b'n') => self.literal("null", J::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => {
                let found = self.describe();
                self.err(self.i, format!("expected a value, found {found}"))
            }
        }
    }

    fn literal(&mut self, word: &str, v: J) -> R<J> {
        if self.s.get(self.i..self.i + word.len()) == Some(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            let found = self.describe();
            self.err(self.i, format!("expected a value, found {found}"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> R<J> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        if self.digits() == 0 {
            return self.err(start, "invalid number");
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return self.err(start, "invalid number: digits expected after '.'");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err(start, "invalid number: digits expected in the exponent");
            }
        }
        Ok(J::Num(self.text.get(start..self.i).unwrap_or("0").to_string()))
    }

    fn hex4(&mut self) -> R<u32> {
        let Some(h) = self.text.get(self.i..self.i + 4) else {
            return self.err(self.i, "incomplete \\u escape");
        };
        let Ok(v) = u32::from_str_radix(h, 16) else {
            return self.err(self.i, "invalid \\u escape");
        };
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> R<String> {
        let start = self.i;
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let run_start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(self.text.get(run_start..self.i).unwrap_or(""));
            match self.peek() {
                None => return self.err(start, "unterminated string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc_at = self.i;
                    self.i += 1;
                    let Some(e) = self.peek() else {
                        return self.err(start, "unterminated string");
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.s.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return self.err(esc_at, "unpaired surrogate in \\u escape");
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return self.err(esc_at, "invalid surrogate pair");
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            match char::from_u32(cp) {
                                Some(c) => out.push(c),
                                None => return self.err(esc_at, "invalid \\u escape"),
                            }
                        }
                        _ => return self.err(esc_at, "invalid escape in string"),
                    }
                }
                Some(_) => return self.err(self.i, "control character inside a string"),
            }
        }
    }

    fn object(&mut self, depth: usize) -> R<J> {
        self.i += 1; // '{'
        let mut members = Vec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(J::Obj(members));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                let found = self.describe();
                let hint = if self.peek() == Some(b'}') { " (trailing comma?)" } else { "" };
                return self.err(self.i, format!("expected a quoted key, found {found}{hint}"));
            }
            let key_off = self.i;
            let key = self.string()?;
            self.expect(b':', "':' after the key")?;
            self.ws();
            let val_off = self.i;
            let val = self.value(depth + 1)?;
            members.push(Member { key, key_off, val, val_off });
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(J::Obj(members));
                }
                _ => {
                    let found = self.describe();
                    return self.err(self.i, format!("expected ',' or '}}', found {found}"));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> R<J> {
        self.i += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(J::Arr(items));
        }
        loop {
            self.ws();
            let off = self.i;
            items.push((self.value(depth + 1)?, off));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(J::Arr(items));
                }
                _ => {
                    let found = self.describe();
                    return self.err(self.i, format!("expected ',' or ']', found {found}"));
                }
            }
        }
    }
}

/// Parses one JSON document (trailing whitespace allowed, nothing else).
pub(crate) fn parse(text: &str) -> Result<(J, usize), SyntaxError> {
    let mut p = P { s: text.as_bytes(), i: 0, text };
    p.ws();
    let off = p.i;
    let v = p.value(0)?;
    p.ws();
    if p.i < p.s.len() {
        let found = p.describe();
        return p.err(p.i, format!("unexpected {found} after the end of the document"));
    }
    Ok((v, off))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_offsets_and_duplicates() {
        let (v, _) =
            parse(r#"{"a": 1, "b": {"c": [true, null]}, "a": "x\u00e9\ud83d\ude00"}"#).unwrap();
        let J::Obj(m) = v else { panic!() };
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].key_off, 1);
        assert_eq!(m[2].val, J::Str("xé😀".into()));
    }

    #[test]
    fn errors_have_offsets() {
        let e = parse("{\"a\": 1,}").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("trailing comma"));
        assert!(parse(&"[".repeat(10_000)).is_err());
        assert!(parse("01x").is_err());
    }
}
