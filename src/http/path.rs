//! PLACEHOLDER: replaced by the normaliser from the `router` branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    AboveRoot,
    BadPercentEncoding,
    NotAbsolute,
}
pub fn normalize(raw: &[u8], out: &mut Vec<u8>) -> Result<(), PathError> {
    out.clear();
    if !raw.starts_with(b"/") {
        return Err(PathError::NotAbsolute);
    }
    out.extend_from_slice(raw);
    Ok(())
}
