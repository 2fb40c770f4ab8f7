//! PromQL's tokens: identifiers (metric names, label names, functions and keywords alike:
//! the parser tells them apart by position), numbers, durations, strings, operators and
//! brackets. A `$` is refused: Grafana's variables must be replaced before (see
//! [`crate::dashboard`]), so a stray one is a dashboard bug, not PromQL.

/// One token.
#[derive(Clone, Debug, PartialEq)]
pub enum Token {
    /// A name: `rate`, `llmesh_requests_total`, `by`, `model`, `recording:rule_name`.
    Ident(String),
    /// A number: `0.99`, `1e6`, `3600`, `Inf`.
    Number(f64),
    /// A duration: `5m`, `1h30m`, `250ms`.
    Duration(String),
    /// A quoted string, unescaped.
    Str(String),
    /// An operator or matcher: `+ - * / % ^ == != <= >= < > = =~ !~ @`.
    Op(&'static str),
    /// `( ) { } [ ] , :`.
    Punct(char),
}

/// Splits `text` into tokens.
pub fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    // Inside `[...]` a `:` separates a subquery's range from its step; elsewhere it is
    // part of a (recording rule's) name.
    let mut in_brackets = false;
    while let Some(&c) = chars.get(i) {
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                // A comment, to the end of the line.
                while chars.get(i).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
            }
            '$' => {
                return Err(format!(
                    "a Grafana variable outside a string at {i}: {text}"
                ));
            }
            '"' | '\'' | '`' => {
                let (s, end) = string(&chars, i)?;
                out.push(Token::Str(s));
                i = end;
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let (token, end) = number_or_duration(&chars, i)?;
                out.push(token);
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == '_' || (c == ':' && !in_brackets) => {
                let start = i;
                while chars.get(i).is_some_and(|&c| {
                    c.is_ascii_alphanumeric() || c == '_' || (c == ':' && !in_brackets)
                }) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match word.to_ascii_lowercase().as_str() {
                    "inf" => out.push(Token::Number(f64::INFINITY)),
                    "nan" => out.push(Token::Number(f64::NAN)),
                    _ => out.push(Token::Ident(word)),
                }
            }
            '(' | ')' | '{' | '}' | ',' | ':' => {
                out.push(Token::Punct(c));
                i += 1;
            }
            '[' | ']' => {
                in_brackets = c == '[';
                out.push(Token::Punct(c));
                i += 1;
            }
            _ => {
                let two: String = [c, next.unwrap_or(' ')].iter().collect();
                let op = ["==", "!=", "<=", ">=", "=~", "!~"]
                    .into_iter()
                    .find(|op| *op == two);
                if let Some(op) = op {
                    out.push(Token::Op(op));
                    i += 2;
                    continue;
                }
                let op = ["+", "-", "*", "/", "%", "^", "<", ">", "=", "@"]
                    .into_iter()
                    .find(|op| op.starts_with(c))
                    .ok_or_else(|| format!("unexpected {c:?} at {i}: {text}"))?;
                out.push(Token::Op(op));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A quoted string starting at `start`: its value and the index after its closing quote.
fn string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err("an unterminated string".into()),
            Some(&c) if c == quote => return Ok((out, i + 1)),
            // Raw (backquoted) strings have no escapes.
            Some('\\') if quote != '`' => {
                let escaped = chars.get(i + 1).ok_or("an unterminated string")?;
                out.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    other => *other,
                });
                i += 2;
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}

/// A number, or a duration (digits followed by units: `1h30m`, `250ms`).
fn number_or_duration(chars: &[char], start: usize) -> Result<(Token, usize), String> {
    let mut i = start;
    let mut text = String::new();
    let unit_at = |i: usize| {
        let c = chars.get(i).copied();
        let after = chars.get(i + 1).copied();
        match c {
            Some('m') if after == Some('s') => Some(2),
            Some('s' | 'm' | 'h' | 'd' | 'w' | 'y') => Some(1),
            _ => None,
        }
    };
    while chars.get(i).is_some_and(char::is_ascii_digit) {
        text.push(chars[i]);
        i += 1;
    }
    if unit_at(i).is_some() {
        // A duration: (digits unit)+.
        while let Some(width) = unit_at(i) {
            text.extend(&chars[i..i + width]);
            i += width;
            if !chars.get(i).is_some_and(char::is_ascii_digit) {
                break;
            }
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                text.push(chars[i]);
                i += 1;
            }
            if unit_at(i).is_none() {
                return Err(format!("a duration ending in a number: {text}"));
            }
        }
        if chars.get(i).is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("a malformed duration at {text}"));
        }
        return Ok((Token::Duration(text), i));
    }
    while chars
        .get(i)
        .is_some_and(|c| c.is_ascii_digit() || *c == '.')
    {
        text.push(chars[i]);
        i += 1;
    }
    if chars.get(i).is_some_and(|c| *c == 'e' || *c == 'E') {
        text.push('e');
        i += 1;
        if chars.get(i).is_some_and(|c| *c == '+' || *c == '-') {
            text.push(chars[i]);
            i += 1;
        }
        while chars.get(i).is_some_and(char::is_ascii_digit) {
            text.push(chars[i]);
            i += 1;
        }
    }
    if chars
        .get(i)
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == '_')
    {
        return Err(format!("a malformed number at {text}{}", chars[i]));
    }
    let value = text
        .parse()
        .map_err(|e| format!("a malformed number {text}: {e}"))?;
    Ok((Token::Number(value), i))
}
