//! A small JSON reader for the envelope and the signed body: it walks the bytes in place, hands
//! back borrowed spans (a string's escaped contents, an array's or object's bytes) and never
//! builds a tree. Nested values it does not need are skipped with a 64-level bit stack instead of
//! recursion, so its stack use is fixed whatever the input.
//!
//! It reads RFC 8259 JSON; the only limit is that depth. It does not check that the input is
//! canonical: what the signature covers is the bytes, not their meaning.

/// Why the JSON could not be read. Callers turn it into the [`crate::Rejection`] of the check
/// that was reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Deepest nesting of arrays and objects the reader follows.
const MAX_DEPTH: u32 = 64;

/// A JSON string as it stands between its quotes: valid UTF-8 with valid escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonStr<'a> {
    raw: &'a str,
}

impl<'a> JsonStr<'a> {
    /// The string itself when it holds no escape (as every key, version, id and digest of a
    /// manifest is written).
    pub(crate) fn plain(self) -> Option<&'a str> {
        match self.raw.contains('\\') {
            true => None,
            false => Some(self.raw),
        }
    }

    /// The string as it stands between its quotes, escapes not decoded.
    pub(crate) fn raw(self) -> &'a str {
        self.raw
    }

    /// Whether the string, escapes decoded, is `other`.
    pub(crate) fn equals(self, other: &str) -> bool {
        let mut theirs = other.chars();
        let mut mine = Unescape { rest: self.raw };
        loop {
            match (mine.next(), theirs.next()) {
                (None, None) => return true,
                (Some(Some(a)), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    }
}

/// The characters of an escaped string; `Some(None)` for an escape that is no character (a lone
/// surrogate).
struct Unescape<'a> {
    rest: &'a str,
}

impl Iterator for Unescape<'_> {
    type Item = Option<char>;

    fn next(&mut self) -> Option<Option<char>> {
        let mut chars = self.rest.chars();
        let c = chars.next()?;
        if c != '\\' {
            self.rest = chars.as_str();
            return Some(Some(c));
        }
        let kind = chars.next()?;
        self.rest = chars.as_str();
        let c = match kind {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{08}',
            'f' => '\u{0c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            _ => {
                let high = self.hex4()?;
                if !(0xd800..0xdc00).contains(&high) {
                    return Some(char::from_u32(high));
                }
                let Some(rest) = self.rest.strip_prefix("\\u") else { return Some(None) };
                self.rest = rest;
                let low = self.hex4()?;
                if !(0xdc00..0xe000).contains(&low) {
                    return Some(None);
                }
                let c = high.checked_sub(0xd800)?.checked_shl(10)?.checked_add(low.checked_sub(0xdc00)?)?;
                return Some(char::from_u32(c.checked_add(0x10000)?));
            }
        };
        Some(Some(c))
    }
}

impl Unescape<'_> {
    /// Four hex digits (the reader checked they are there).
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.rest.get(..4)?;
        self.rest = self.rest.get(4..)?;
        digits.bytes().try_fold(0u32, |acc, d| acc.checked_mul(16)?.checked_add(hex_digit(d)?))
    }
}

/// The value of one hex digit, either case.
pub(crate) fn hex_digit(d: u8) -> Option<u32> {
    char::from(d).to_digit(16)
}

/// One JSON value: scalars read, containers as their bytes (from the bracket to its match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Null,
    Bool(bool),
    /// A number's bytes, checked against JSON's grammar.
    Number(&'a [u8]),
    Str(JsonStr<'a>),
    Array(&'a [u8]),
    Object(&'a [u8]),
}

impl Value<'_> {
    /// A non-negative integer that fits 64 bits, as JSON writes it (no sign, no leading zero, no
    /// fraction or exponent).
    pub(crate) fn as_u64(self) -> Option<u64> {
        let Value::Number(digits) = self else { return None };
        if digits.len() > 1 && digits.first() == Some(&b'0') {
            return None;
        }
        digits.iter().try_fold(0u64, |acc, &d| {
            let d = char::from(d).to_digit(10)?;
            acc.checked_mul(10)?.checked_add(u64::from(d))
        })
    }
}

/// A cursor over JSON bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.bump();
        }
    }

    /// Skips whitespace and takes `byte`.
    fn expect(&mut self, byte: u8) -> Result<(), Malformed> {
        self.skip_ws();
        match self.peek() == Some(byte) {
            true => {
                self.bump();
                Ok(())
            }
            false => Err(Malformed),
        }
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.pos >= self.bytes.len()
    }

    /// The bytes from `start` to the current position.
    fn since(&self, start: usize) -> Result<&'a [u8], Malformed> {
        self.bytes.get(start..self.pos).ok_or(Malformed)
    }

    /// Reads a string, its opening quote next (after whitespace).
    pub(crate) fn string(&mut self) -> Result<JsonStr<'a>, Malformed> {
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            match self.peek().ok_or(Malformed)? {
                b'"' => break,
                b'\\' => {
                    self.bump();
                    match self.peek().ok_or(Malformed)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.bump(),
                        b'u' => {
                            self.bump();
                            for _ in 0..4 {
                                hex_digit(self.peek().ok_or(Malformed)?).ok_or(Malformed)?;
                                self.bump();
                            }
                        }
                        _ => return Err(Malformed),
                    }
                }
                0..0x20 => return Err(Malformed),
                _ => self.bump(),
            }
        }
        let raw = core::str::from_utf8(self.since(start)?).map_err(|_| Malformed)?;
        self.bump();
        Ok(JsonStr { raw })
    }

    /// Reads a number as JSON's grammar has it: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Result<&'a [u8], Malformed> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => self.bump(),
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(Malformed),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.bump();
            if let Some(b'+' | b'-') = self.peek() {
                self.bump();
            }
            self.some_digits()?;
        }
        self.since(start)
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.bump();
        }
    }

    fn some_digits(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                self.digits();
                Ok(())
            }
            _ => Err(Malformed),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Malformed> {
        let end = self.pos.checked_add(word.len()).ok_or(Malformed)?;
        match self.bytes.get(self.pos..end) == Some(word) {
            true => {
                self.pos = end;
                Ok(())
            }
            false => Err(Malformed),
        }
    }

    /// Reads the next value (after whitespace).
    pub(crate) fn value(&mut self) -> Result<Value<'a>, Malformed> {
        self.skip_ws();
        let start = self.pos;
        Ok(match self.peek().ok_or(Malformed)? {
            b'n' => self.literal(b"null").map(|()| Value::Null)?,
            b't' => self.literal(b"true").map(|()| Value::Bool(true))?,
            b'f' => self.literal(b"false").map(|()| Value::Bool(false))?,
            b'"' => Value::Str(self.string()?),
            b'[' => {
                self.skip_container()?;
                Value::Array(self.since(start)?)
            }
            b'{' => {
                self.skip_container()?;
                Value::Object(self.since(start)?)
            }
            _ => Value::Number(self.number()?),
        })
    }

    /// A scalar (anything but an array or object).
    fn scalar(&mut self) -> Result<(), Malformed> {
        match self.peek() {
            Some(b'[' | b'{') | None => Err(Malformed),
            Some(_) => self.value().map(|_| ()),
        }
    }

    /// Moves past the array or object that starts here, checking its grammar. Bit `d` of `stack`
    /// says whether the container at depth `d` is an object.
    fn skip_container(&mut self) -> Result<(), Malformed> {
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Next {
            /// A value, or `]` (just after `[`).
            ValueOrClose,
            Value,
            /// A key, or `}` (just after `{`).
            KeyOrClose,
            Key,
            Colon,
            CommaOrClose,
        }
        let (mut stack, mut depth) = (0u64, 0u32);
        let mut next = Next::Value;
        loop {
            self.skip_ws();
            let byte = self.peek().ok_or(Malformed)?;
            let is_object = depth > 0 && stack & 1u64.checked_shl(depth.saturating_sub(1)).unwrap_or(0) != 0;
            match next {
                // A closing bracket: handled below the match, which every other arm `continue`s past.
                Next::ValueOrClose if byte == b']' => {}
                Next::KeyOrClose if byte == b'}' => {}
                Next::Value | Next::ValueOrClose if byte == b'[' || byte == b'{' => {
                    if depth >= MAX_DEPTH {
                        return Err(Malformed);
                    }
                    let object = byte == b'{';
                    let bit = 1u64.checked_shl(depth).unwrap_or(0);
                    stack = if object { stack | bit } else { stack & !bit };
                    depth = depth.saturating_add(1);
                    self.bump();
                    next = if object { Next::KeyOrClose } else { Next::ValueOrClose };
                    continue;
                }
                Next::Value | Next::ValueOrClose => {
                    self.scalar()?;
                    next = Next::CommaOrClose;
                    continue;
                }
                Next::Key | Next::KeyOrClose => {
                    self.string()?;
                    next = Next::Colon;
                    continue;
                }
                Next::Colon => {
                    self.expect(b':')?;
                    next = Next::Value;
                    continue;
                }
                Next::CommaOrClose if byte == b',' => {
                    self.bump();
                    next = if is_object { Next::Key } else { Next::Value };
                    continue;
                }
                Next::CommaOrClose => {
                    let close = if is_object { b'}' } else { b']' };
                    if byte != close || depth == 0 {
                        return Err(Malformed);
                    }
                }
            }
            self.bump();
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return Ok(());
            }
            next = Next::CommaOrClose;
        }
    }
}

/// The members of an object, read one at a time from its bytes (as [`Value::Object`] gives them).
pub(crate) struct Members<'a> {
    reader: Reader<'a>,
    first: bool,
    done: bool,
}

impl<'a> Members<'a> {
    /// Starts reading an object: `bytes` must be one object and nothing else but whitespace.
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let mut reader = Reader::new(bytes);
        reader.expect(b'{')?;
        Ok(Self { reader, first: true, done: false })
    }

    /// The next member, `None` after the closing brace.
    pub(crate) fn next_member(&mut self) -> Result<Option<(JsonStr<'a>, Value<'a>)>, Malformed> {
        if self.done {
            return Ok(None);
        }
        self.reader.skip_ws();
        if self.reader.peek() == Some(b'}') {
            // After `{` or after a member; after a comma the key is read and fails.
            return self.close();
        }
        if !self.first {
            self.reader.expect(b',')?;
        }
        self.first = false;
        let key = self.reader.string()?;
        self.reader.expect(b':')?;
        let value = self.reader.value()?;
        Ok(Some((key, value)))
    }

    fn close(&mut self) -> Result<Option<(JsonStr<'a>, Value<'a>)>, Malformed> {
        self.reader.bump();
        self.done = true;
        match self.reader.at_end() {
            true => Ok(None),
            false => Err(Malformed),
        }
    }
}

/// The elements of an array, read one at a time from its bytes (as [`Value::Array`] gives them).
pub(crate) struct Elements<'a> {
    reader: Reader<'a>,
    first: bool,
    done: bool,
}

impl<'a> Elements<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Result<Self, Malformed> {
        let mut reader = Reader::new(bytes);
        reader.expect(b'[')?;
        Ok(Self { reader, first: true, done: false })
    }

    /// The next element, `None` after the closing bracket.
    pub(crate) fn next_element(&mut self) -> Result<Option<Value<'a>>, Malformed> {
        if self.done {
            return Ok(None);
        }
        self.reader.skip_ws();
        if self.reader.peek() == Some(b']') {
            self.reader.bump();
            self.done = true;
            return match self.reader.at_end() {
                true => Ok(None),
                false => Err(Malformed),
            };
        }
        if !self.first {
            self.reader.expect(b',')?;
        }
        self.first = false;
        let value = self.reader.value()?;
        Ok(Some(value))
    }
}
