//! Byte sizes as people write them on the command line: `4GiB`, `50MiB`, `1000000`.

use crate::error::{Error, Result};

/// The largest file FAT32 can hold, the default part size.
pub const FAT32_MAX: u64 = 4 * 1024 * 1024 * 1024 - 1;

/// The warning printed when parts may outgrow FAT32; exFAT, NTFS and ext4 media take larger ones.
pub fn part_size_warning(max_part_size: u64) -> Option<String> {
    (max_part_size > FAT32_MAX).then(|| {
        format!(
            "parts of up to {max_part_size} bytes do not fit on FAT32 media, whose largest file is {FAT32_MAX} \
             bytes (4 GiB - 1, the default part size): copy such a bundle only onto exFAT, NTFS or ext4"
        )
    })
}

/// Reads a size: bytes, or with a unit (`4GiB`, `50MiB`, `1GB`).
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| Error::malformed(format!("size '{text}': expected a number of bytes, e.g. 4GiB or 50MiB")))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => {
            return Err(Error::malformed(format!(
                "size '{text}': unknown unit '{other}' (use B, KiB, MiB, GiB, TiB, KB, MB, GB or TB)"
            )))
        }
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| Error::malformed(format!("size '{text}' is too large")))?;
    if bytes == 0 {
        return Err(Error::malformed(format!("size '{text}' must be larger than zero")));
    }
    Ok(bytes)
}

/// A size for people (`1.2 GiB`).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_size("50MiB").unwrap(), 50 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        assert!(parse_size("0").is_err());
        assert!(parse_size("12XB").unwrap_err().to_string().contains("unknown unit"));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn only_parts_larger_than_fat32_takes_are_warned_about() {
        assert!(part_size_warning(FAT32_MAX).is_none());
        let w = part_size_warning(parse_size("4GiB").unwrap()).unwrap();
        assert!(w.contains("FAT32") && w.contains("4294967296"), "{w}");
    }

    #[test]
    fn human_readable() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(3 << 20), "3.0 MiB");
    }
}
