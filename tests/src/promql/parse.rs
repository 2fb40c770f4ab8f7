//! The parser: precedence climbing over binary operators (Prometheus' order: `^`, then
//! `* / % atan2`, `+ -`, comparisons, `and unless`, `or`), with the primaries below them.

use super::lex::{Token, tokens};
use super::{Expr, Grouping, Matcher, Matching};

/// The aggregation operators; the ones taking a parameter first are marked.
const AGGREGATIONS: &[(&str, bool)] = &[
    ("sum", false),
    ("min", false),
    ("max", false),
    ("avg", false),
    ("group", false),
    ("stddev", false),
    ("stdvar", false),
    ("count", false),
    ("count_values", true),
    ("bottomk", true),
    ("topk", true),
    ("quantile", true),
    ("limitk", true),
    ("limit_ratio", true),
];

/// Parses one PromQL expression.
pub fn parse(text: &str) -> Result<Expr, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
    };
    let expr = parser.expr(0)?;
    match parser.peek() {
        None => Ok(expr),
        Some(t) => Err(format!("unexpected {t:?} after a whole expression")),
    }
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

/// The binding power of binary operator `op` (higher binds tighter), and whether it is
/// right-associative.
fn precedence(op: &str) -> Option<(u8, bool)> {
    Some(match op {
        "or" => (1, false),
        "and" | "unless" => (2, false),
        "==" | "!=" | "<=" | "<" | ">=" | ">" => (3, false),
        "+" | "-" => (4, false),
        "*" | "/" | "%" | "atan2" => (5, false),
        "^" => (6, true),
        _ => return None,
    })
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Token::Punct(c))
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Ident(w)) if w == word)
    }

    fn expect_punct(&mut self, c: char) -> Result<(), String> {
        match self.next() {
            Some(Token::Punct(p)) if p == c => Ok(()),
            other => Err(format!("expected {c:?}, found {other:?}")),
        }
    }

    /// The binary operator at the cursor, if any.
    fn binary_op(&self) -> Option<String> {
        match self.peek()? {
            Token::Op(op) if precedence(op).is_some() => Some((*op).to_owned()),
            Token::Ident(w) if precedence(w).is_some() => Some(w.clone()),
            _ => None,
        }
    }

    fn expr(&mut self, min: u8) -> Result<Expr, String> {
        let mut lhs = self.unary()?;
        while let Some(op) = self.binary_op() {
            let Some((power, right)) = precedence(&op) else {
                break;
            };
            if power < min {
                break;
            }
            self.at += 1;
            let matching = self.matching()?;
            let rhs = self.expr(if right { power } else { power + 1 })?;
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching,
            };
        }
        Ok(lhs)
    }

    /// `bool`, `on|ignoring (...)`, `group_left|group_right [(...)]` after an operator.
    fn matching(&mut self) -> Result<Option<Matching>, String> {
        if self.is_word("bool") {
            self.at += 1;
        }
        let mut matching = Matching::default();
        for (word, on) in [("on", true), ("ignoring", false)] {
            if self.is_word(word) {
                self.at += 1;
                matching.on = Some((on, self.labels()?));
            }
        }
        for (word, left) in [("group_left", true), ("group_right", false)] {
            if self.is_word(word) {
                self.at += 1;
                let labels = if self.is_punct('(') {
                    self.labels()?
                } else {
                    Vec::new()
                };
                matching.group = Some((left, labels));
            }
        }
        Ok((matching != Matching::default()).then_some(matching))
    }

    /// `(label, ...)`.
    fn labels(&mut self) -> Result<Vec<String>, String> {
        self.expect_punct('(')?;
        let mut labels = Vec::new();
        loop {
            match self.next() {
                Some(Token::Punct(')')) => return Ok(labels),
                Some(Token::Ident(label)) => {
                    labels.push(label);
                    if self.is_punct(',') {
                        self.at += 1;
                    }
                }
                other => return Err(format!("expected a label name, found {other:?}")),
            }
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.peek() {
            Some(Token::Op("-")) => {
                self.at += 1;
                Ok(Expr::Negate(Box::new(self.expr(6)?)))
            }
            Some(Token::Op("+")) => {
                self.at += 1;
                self.expr(6)
            }
            _ => {
                let primary = self.primary()?;
                self.postfix(primary)
            }
        }
    }

    /// `[range]`, `[range:step]`, `offset d`, `@ t` after a primary.
    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, String> {
        loop {
            if self.is_punct('[') {
                self.at += 1;
                let range = match self.next() {
                    Some(Token::Duration(d)) => d,
                    other => return Err(format!("expected a duration, found {other:?}")),
                };
                if self.is_punct(':') {
                    self.at += 1;
                    if let Some(Token::Duration(_)) = self.peek() {
                        self.at += 1;
                    }
                    expr = Expr::Subquery {
                        expr: Box::new(expr),
                        range,
                    };
                } else if let Expr::Selector {
                    range: r @ None, ..
                } = &mut expr
                {
                    *r = Some(range);
                } else {
                    return Err(format!("a range [{range}] on something not a selector"));
                }
                self.expect_punct(']')?;
            } else if self.is_word("offset") {
                self.at += 1;
                if self.peek() == Some(&Token::Op("-")) {
                    self.at += 1;
                }
                match self.next() {
                    Some(Token::Duration(_)) => {}
                    other => return Err(format!("expected an offset, found {other:?}")),
                }
            } else if self.peek() == Some(&Token::Op("@")) {
                self.at += 1;
                match self.next() {
                    Some(Token::Number(_)) => {}
                    Some(Token::Ident(w)) if w == "start" || w == "end" => {
                        self.expect_punct('(')?;
                        self.expect_punct(')')?;
                    }
                    other => return Err(format!("expected a time after @, found {other:?}")),
                }
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.next() {
            Some(Token::Number(n)) => Ok(Expr::Number(n)),
            Some(Token::Str(s)) => Ok(Expr::Str(s)),
            Some(Token::Punct('(')) => {
                let inner = self.expr(0)?;
                self.expect_punct(')')?;
                Ok(inner)
            }
            Some(Token::Punct('{')) => Err("a selector without a metric name".into()),
            Some(Token::Ident(word)) => {
                if let Some(&(_, param)) = AGGREGATIONS.iter().find(|(op, _)| *op == word) {
                    return self.aggregate(word, param);
                }
                if self.is_punct('(') {
                    self.at += 1;
                    let args = self.args()?;
                    return Ok(Expr::Call { func: word, args });
                }
                if precedence(&word).is_some()
                    || ["by", "without", "on", "ignoring", "bool", "offset"]
                        .contains(&word.as_str())
                {
                    return Err(format!("keyword {word} where an expression belongs"));
                }
                let matchers = if self.is_punct('{') {
                    self.at += 1;
                    self.matchers()?
                } else {
                    Vec::new()
                };
                Ok(Expr::Selector {
                    name: word,
                    matchers,
                    range: None,
                })
            }
            other => Err(format!("expected an expression, found {other:?}")),
        }
    }

    /// A call's arguments after its `(`, through the `)`.
    fn args(&mut self) -> Result<Vec<Expr>, String> {
        let mut args = Vec::new();
        if self.is_punct(')') {
            self.at += 1;
            return Ok(args);
        }
        loop {
            args.push(self.expr(0)?);
            match self.next() {
                Some(Token::Punct(',')) => {}
                Some(Token::Punct(')')) => return Ok(args),
                other => return Err(format!("expected , or ) in a call, found {other:?}")),
            }
        }
    }

    fn grouping(&mut self) -> Result<Option<Grouping>, String> {
        for (word, without) in [("by", false), ("without", true)] {
            if self.is_word(word) {
                self.at += 1;
                return Ok(Some(Grouping {
                    without,
                    labels: self.labels()?,
                }));
            }
        }
        Ok(None)
    }

    fn aggregate(&mut self, op: String, takes_param: bool) -> Result<Expr, String> {
        let before = self.grouping()?;
        self.expect_punct('(')?;
        let mut args = self.args()?;
        let after = self.grouping()?;
        let grouping = match (before, after) {
            (Some(_), Some(_)) => return Err(format!("{op} grouped twice")),
            (g, None) | (None, g) => g,
        };
        let wanted = if takes_param { 2 } else { 1 };
        if args.len() != wanted {
            return Err(format!(
                "{op} takes {wanted} argument(s), got {}",
                args.len()
            ));
        }
        let expr = Box::new(args.pop().ok_or("no argument")?);
        let param = args.pop().map(Box::new);
        Ok(Expr::Aggregate {
            op,
            param,
            grouping,
            expr,
        })
    }

    /// Matchers after a selector's `{`, through the `}`.
    fn matchers(&mut self) -> Result<Vec<Matcher>, String> {
        let mut matchers = Vec::new();
        loop {
            let label = match self.next() {
                Some(Token::Punct('}')) => return Ok(matchers),
                Some(Token::Ident(label)) => label,
                other => return Err(format!("expected a label matcher, found {other:?}")),
            };
            let op = match self.next() {
                Some(Token::Op(op @ ("=" | "!=" | "=~" | "!~"))) => op,
                other => return Err(format!("expected a matcher operator, found {other:?}")),
            };
            let value = match self.next() {
                Some(Token::Str(value)) => value,
                other => return Err(format!("expected a quoted value, found {other:?}")),
            };
            matchers.push(Matcher { label, op, value });
            match self.next() {
                Some(Token::Punct(',')) => {}
                Some(Token::Punct('}')) => return Ok(matchers),
                other => return Err(format!("expected , or }} in a selector, found {other:?}")),
            }
        }
    }
}
