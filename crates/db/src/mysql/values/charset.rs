//! A column's character set, and decoding its text bytes by it (WHATWG
//! decoders from encoding_rs; MySQL's latin1 is windows-1252).

use mysql_common::collations::{Collation, CollationId};
use mysql_common::packets::Column;

use super::BINARY_CHARSET;

/// How a column's text bytes become a string.
#[derive(Debug, Clone, Copy)]
pub enum Charset {
    /// UTF-8 (utf8mb4, utf8mb3, ascii), and the `binary` set of numbers,
    /// temporal values and MySQL's JSON, whose text is ASCII or UTF-8.
    Utf8,
    /// A legacy character set, by its WHATWG decoder (latin1 is windows-1252).
    Legacy(&'static encoding_rs::Encoding),
    /// UTF-32, big-endian.
    Utf32,
}

impl Charset {
    /// The column's character set, or `None` where no decoder is known.
    pub fn of(column: &Column) -> Option<Charset> {
        let id = column.character_set();
        if id == BINARY_CHARSET {
            return Some(Charset::Utf8);
        }
        let collation = match CollationId::from(id) {
            // Newer collations (MariaDB's UCA 14.0 ones) are utf8mb4's.
            CollationId::UNKNOWN_COLLATION_ID => return Some(Charset::Utf8),
            known => Collation::resolve(known),
        };
        let label: &[u8] = match collation.charset() {
            "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => return Some(Charset::Utf8),
            "utf32" => return Some(Charset::Utf32),
            "latin1" => b"windows-1252",
            "latin2" => b"iso-8859-2",
            "latin5" => b"windows-1254",
            "latin7" => b"iso-8859-13",
            "cp1250" => b"windows-1250",
            "cp1251" => b"windows-1251",
            "cp1256" => b"windows-1256",
            "cp1257" => b"windows-1257",
            "cp866" => b"ibm866",
            "koi8r" => b"koi8-r",
            "koi8u" => b"koi8-u",
            "greek" => b"iso-8859-7",
            "hebrew" => b"iso-8859-8",
            "tis620" => b"windows-874",
            "macroman" => b"macintosh",
            "sjis" | "cp932" => b"shift_jis",
            "ujis" | "eucjpms" => b"euc-jp",
            "gbk" | "gb2312" => b"gbk",
            "gb18030" => b"gb18030",
            "big5" => b"big5",
            "euckr" => b"euc-kr",
            "ucs2" | "utf16" => b"utf-16be",
            "utf16le" => b"utf-16le",
            _ => return None,
        };
        encoding_rs::Encoding::for_label(label).map(Charset::Legacy)
    }

    /// The text of `bytes`, or `None` if they are not valid in this set.
    pub fn decode(self, bytes: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(Into::into),
            Charset::Legacy(encoding) => {
                encoding.decode_without_bom_handling_and_without_replacement(bytes)
            }
            Charset::Utf32 => {
                if !bytes.len().is_multiple_of(4) {
                    return None;
                }
                bytes
                    .chunks_exact(4)
                    .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect::<Option<String>>()
                    .map(Into::into)
            }
        }
    }
}
