//! Office documents for native-file exports: the sandbox's Docs export a real `.docx` (a zip
//! with the OOXML parts Word needs to open it), so a test or the demo can check that what was
//! imported opens as a document, not merely that some bytes arrived.

use std::io::{Cursor, Read, Write};

use crate::Content;

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>"#;

const RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>"#;

/// A one-paragraph `.docx` holding `text` (XML-escaped), deflate-compressed like Drive's.
pub fn docx(text: &str) -> Content {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let document = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t xml:space="preserve">{escaped}</w:t></w:r></w:p></w:body></w:document>"#
    );
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for (name, body) in
        [("[Content_Types].xml", CONTENT_TYPES), ("_rels/.rels", RELS), ("word/document.xml", &document)]
    {
        // Writing to memory cannot fail.
        zip.start_file(name, opts).expect("zip entry");
        zip.write_all(body.as_bytes()).expect("zip write");
    }
    Content::Bytes(zip.finish().expect("zip").into_inner())
}

/// The text of a `.docx`'s paragraphs, read as a word processor would: `Err` names what makes
/// the bytes not a document (not a zip, no content types, no main document part).
pub fn docx_text(bytes: &[u8]) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| format!("not a zip: {e}"))?;
    zip.by_name("[Content_Types].xml").map_err(|_| "no [Content_Types].xml".to_string())?;
    let mut xml = String::new();
    zip.by_name("word/document.xml")
        .map_err(|_| "no word/document.xml".to_string())?
        .read_to_string(&mut xml)
        .map_err(|e| format!("word/document.xml: {e}"))?;
    let mut text = String::new();
    for run in xml.split("<w:t").skip(1) {
        let Some((_, rest)) = run.split_once('>') else { continue };
        let Some((t, _)) = rest.split_once("</w:t>") else { continue };
        text.push_str(&t.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_docx_reads_back() {
        let Content::Bytes(b) = docx("Q3 <plan> & notes") else { panic!("bytes") };
        assert_eq!(&b[..2], b"PK");
        assert_eq!(docx_text(&b).as_deref(), Ok("Q3 <plan> & notes"));
        assert!(docx_text(b"plain text").is_err_and(|e| e.starts_with("not a zip")));
    }
}
