//! Just enough XML for the AWS query API's answers (STS): elements, attributes (skipped),
//! character and the five predefined entity references, CDATA, comments and the XML
//! declaration. A DOCTYPE is refused, so no entity defined by the document is ever
//! expanded. Elements match by local name (a namespace prefix is dropped), as the
//! answers put everything in one default namespace.

use std::collections::HashMap;

/// Nesting deeper than this is not an STS answer.
const MAX_DEPTH: usize = 32;

/// The text of each child element of the first element at `path` (local names from
/// the root), e.g. `["ErrorResponse", "Error"]` → `{"Code": …, "Message": …}`; `None`
/// when the document has no such element. Errors say what is malformed, never quote
/// the document.
pub(super) fn children(
    xml: &str,
    path: &[&str],
) -> Result<Option<HashMap<String, String>>, String> {
    let mut stack: Vec<&str> = Vec::new();
    let mut found: Option<HashMap<String, String>> = None;
    // Set once the first element at `path` closes: later ones are not read.
    let mut done = false;
    let mut rest = xml.trim_start_matches('\u{feff}');
    while !rest.is_empty() {
        let Some(open) = rest.find('<') else {
            text(&mut found, done, &stack, path, rest)?;
            break;
        };
        if open > 0 {
            text(&mut found, done, &stack, path, &rest[..open])?;
        }
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<?") {
            rest = skip_past(after, "?>")?;
        } else if let Some(after) = rest.strip_prefix("<!--") {
            rest = skip_past(after, "-->")?;
        } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").ok_or("an unterminated CDATA section")?;
            if !done {
                push_text(&mut found, &stack, path, &after[..end]);
            }
            rest = &after[end + 3..];
        } else if rest.starts_with("<!") {
            return Err("a DOCTYPE or other declaration, which STS never sends".into());
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("an unterminated end tag")?;
            let name = local(after[..end].trim_end());
            match stack.pop() {
                Some(open) if open == name => {}
                _ => return Err(format!("an end tag </{name}> that closes nothing open")),
            }
            if found.is_some() && stack.len() < path.len() {
                done = true;
            }
            rest = &after[end + 1..];
        } else {
            let after = &rest[1..];
            let end = tag_end(after)?;
            let tag = &after[..end];
            let closed = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name_end = tag
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(tag.len());
            let name = local(&tag[..name_end]);
            if name.is_empty() {
                return Err("a tag without a name".into());
            }
            if !closed {
                if stack.len() >= MAX_DEPTH {
                    return Err("elements nested too deeply".into());
                }
                stack.push(name);
                if stack.as_slice() == path && found.is_none() {
                    found = Some(HashMap::new());
                }
            }
            rest = &after[end + 1..];
        }
    }
    if !stack.is_empty() {
        return Err("the document ends inside an element".into());
    }
    Ok(found)
}

/// The child of `path` the stack is directly inside, if any.
fn inside<'a>(stack: &[&'a str], path: &[&str]) -> Option<&'a str> {
    match stack.split_last() {
        Some((child, parent)) if parent == path => Some(child),
        _ => None,
    }
}

fn text(
    found: &mut Option<HashMap<String, String>>,
    done: bool,
    stack: &[&str],
    path: &[&str],
    raw: &str,
) -> Result<(), String> {
    // Decoded everywhere, so a malformed reference anywhere refuses the document.
    let decoded = decode(raw)?;
    if !done {
        push_text(found, stack, path, &decoded);
    }
    Ok(())
}

fn push_text(
    found: &mut Option<HashMap<String, String>>,
    stack: &[&str],
    path: &[&str],
    text: &str,
) {
    if let (Some(map), Some(child)) = (found.as_mut(), inside(stack, path)) {
        map.entry(child.to_owned()).or_default().push_str(text);
    }
}

/// The name without its namespace prefix.
fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, local)| local)
}

fn skip_past<'a>(text: &'a str, end: &str) -> Result<&'a str, String> {
    text.find(end)
        .map(|at| &text[at + end.len()..])
        .ok_or_else(|| format!("an unterminated construct (no {end:?})"))
}

/// Where a start tag's `>` is, skipping quoted attribute values.
fn tag_end(tag: &str) -> Result<usize, String> {
    let mut quote: Option<char> = None;
    for (i, c) in tag.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Ok(i),
            (None, '<') => return Err("a '<' inside a tag".into()),
            _ => {}
        }
    }
    Err("an unterminated start tag".into())
}

/// Character data with its references decoded.
fn decode(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let semi = after
            .find(';')
            .filter(|&at| at <= 10)
            .ok_or("an unterminated entity reference")?;
        let name = &after[..semi];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let code = match name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => name.strip_prefix('#').and_then(|d| d.parse().ok()),
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| format!("an unknown entity reference &{name};"))?
            }
        };
        out.push(c);
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULT: [&str; 3] = [
        "AssumeRoleWithWebIdentityResponse",
        "AssumeRoleWithWebIdentityResult",
        "Credentials",
    ];

    /// AWS's documented example answer (STS API reference, AssumeRoleWithWebIdentity).
    const ANSWER: &str = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>
    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <Expiration>2014-10-24T23:00:23Z</Expiration>
      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <Provider>www.amazon.com</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#;

    #[test]
    fn reads_the_documented_answer() {
        let creds = children(ANSWER, &RESULT).unwrap().unwrap();
        assert_eq!(creds["AccessKeyId"], "ASgeIAIOSFODNN7EXAMPLE");
        assert_eq!(
            creds["SessionToken"],
            "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE"
        );
        assert_eq!(creds["Expiration"], "2014-10-24T23:00:23Z");
        assert_eq!(creds.len(), 4);
        assert_eq!(children(ANSWER, &["ErrorResponse", "Error"]).unwrap(), None);
    }

    #[test]
    fn reads_errors_prefixes_entities_cdata_and_comments() {
        let error = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- from STS -->
<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidIdentityToken</Code>
    <Message>Token &lt;expired&gt; &amp; &#x41;&#66; <![CDATA[<raw>]]></Message>
  </Error>
  <RequestId>4a5b</RequestId>
</ErrorResponse>"#;
        let e = children(error, &["ErrorResponse", "Error"])
            .unwrap()
            .unwrap();
        assert_eq!(e["Code"], "InvalidIdentityToken");
        assert_eq!(e["Message"], "Token <expired> & AB <raw>");
        let prefixed = r#"<a:R xmlns:a="x"><a:C k='>'><a:K>v</a:K><a:E/></a:C></a:R>"#;
        let c = children(prefixed, &["R", "C"]).unwrap().unwrap();
        assert_eq!(c["K"], "v");
    }

    #[test]
    fn refuses_malformed_documents_and_doctypes() {
        for bad in [
            "<A><B>x</A>",
            "<A><B>x</B>",
            "<A>&bogus;</A>",
            "<A>& </A>",
            "<A attr=\"unterminated></A>",
            "<!DOCTYPE A [<!ENTITY x \"y\">]><A>&x;</A>",
            "<A><!-- unterminated </A>",
            "</A>",
            "<>",
        ] {
            assert!(children(bad, &["A", "B"]).is_err(), "{bad:?}");
        }
        let deep = "<A>".repeat(40) + &"</A>".repeat(40);
        assert!(children(&deep, &["A"]).is_err());
    }
}
