//! Phone numbers, always held in E.164 form.

use std::fmt;

/// A phone number that parsed and validated, in E.164 (`+16175550101`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Phone(String);

/// Why a phone number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{input:?} is not a valid phone number (use E.164 like +16175550101, or a 10-digit US number)"
)]
pub struct PhoneError {
    /// The text as given.
    pub input: String,
}

impl Phone {
    /// Parses a phone number as a person would type it; numbers without a country code are
    /// taken as US numbers. Formatting characters (spaces, dots, dashes, parentheses) are ignored.
    pub fn parse(input: &str) -> Result<Phone, PhoneError> {
        let err = || PhoneError {
            input: input.to_string(),
        };
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(err());
        }
        if let Some(fast) = nanp_fast_path(trimmed) {
            return Ok(Phone(fast));
        }
        let parsed =
            phonenumber::parse(Some(phonenumber::country::Id::US), trimmed).map_err(|_| err())?;
        if !phonenumber::is_valid(&parsed) {
            return Err(err());
        }
        Ok(Phone(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Wraps a value that was stored by Ferry and so is known to be E.164 already.
    pub fn from_trusted(e164: String) -> Phone {
        Phone(e164)
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The E.164 form, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Phone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Phone::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The common case, a US number written with or without `+1` and punctuation, decided without
/// the full metadata parser (which costs microseconds per number, and imports parse millions).
/// It applies the numbering plan's structure (area code and exchange start with 2–9, no N11 area
/// codes) and the list of US area codes; anything it does not accept goes to the full parser.
/// A test checks that both agree on every area code in the list.
fn nanp_fast_path(s: &str) -> Option<String> {
    let mut digits = [0u8; 11];
    let mut n = 0usize;
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'0'..=b'9' => {
                if n == 11 {
                    return None;
                }
                digits[n] = b;
                n += 1;
            }
            b'+' if i == 0 => {}
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            _ => return None,
        }
    }
    let national: &[u8] = match n {
        10 if !s.starts_with('+') => &digits[..10],
        11 if digits[0] == b'1' => &digits[1..11],
        _ => return None,
    };
    // NPA and NXX both start with 2-9; N11 codes are not area codes.
    if national[0] < b'2' || national[3] < b'2' || (national[1] == b'1' && national[2] == b'1') {
        return None;
    }
    // Only US area codes known to the metadata are taken here; Canada and the Caribbean share +1
    // but the full parser validates them against their own plans.
    if !us_area_code(&national[..3]) {
        return None;
    }
    let mut out = String::with_capacity(12);
    out.push_str("+1");
    out.push_str(std::str::from_utf8(national).ok()?);
    Some(out)
}

/// Whether the three digits are a US geographic or non-geographic area code in service.
fn us_area_code(npa: &[u8]) -> bool {
    let code = (npa[0] - b'0') as u16 * 100 + (npa[1] - b'0') as u16 * 10 + (npa[2] - b'0') as u16;
    US_AREA_CODES.binary_search(&code).is_ok()
}

/// US area codes (NANPA assignments in service), sorted. Numbers in other +1 codes take the slow path.
const US_AREA_CODES: &[u16] = &[
    201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 220, 223,
    224, 225, 227, 228, 229, 231, 234, 239, 240, 248, 251, 252, 253, 254, 256, 260, 262, 267, 269,
    270, 272, 276, 279, 281, 301, 302, 303, 304, 305, 307, 308, 309, 310, 312, 313, 314, 315, 316,
    317, 318, 319, 320, 321, 323, 325, 326, 330, 331, 332, 334, 336, 337, 339, 341, 346, 347, 350,
    351, 352, 360, 361, 364, 380, 385, 386, 401, 402, 404, 405, 406, 407, 408, 409, 410, 412, 413,
    414, 415, 417, 419, 423, 424, 425, 430, 432, 434, 435, 440, 442, 443, 445, 447, 448, 458, 463,
    464, 469, 470, 475, 478, 479, 480, 484, 501, 502, 503, 504, 505, 507, 508, 509, 510, 512, 513,
    515, 516, 517, 518, 520, 530, 531, 534, 539, 540, 541, 551, 557, 559, 561, 562, 563, 564, 567,
    570, 571, 572, 573, 574, 575, 580, 582, 585, 586, 601, 602, 603, 605, 606, 607, 608, 609, 610,
    612, 614, 615, 616, 617, 618, 619, 620, 623, 626, 628, 629, 630, 631, 636, 640, 641, 646, 650,
    651, 656, 657, 659, 660, 661, 662, 667, 669, 678, 680, 681, 682, 689, 701, 702, 703, 704, 706,
    707, 708, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724, 725, 726, 727, 731, 732, 734, 737,
    740, 743, 747, 754, 757, 760, 762, 763, 765, 769, 770, 772, 773, 774, 775, 779, 781, 785, 786,
    801, 802, 803, 804, 805, 806, 808, 810, 812, 813, 814, 815, 816, 817, 818, 820, 826, 828, 830,
    831, 832, 835, 838, 839, 840, 843, 845, 847, 848, 850, 854, 856, 857, 858, 859, 860, 862, 863,
    864, 865, 870, 872, 878, 901, 903, 904, 906, 907, 908, 909, 910, 912, 913, 914, 915, 916, 917,
    918, 919, 920, 925, 928, 929, 930, 931, 934, 936, 937, 938, 940, 941, 943, 945, 947, 948, 949,
    951, 952, 954, 956, 959, 970, 971, 972, 973, 978, 979, 980, 984, 985, 986, 989,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_formats_become_e164() {
        for input in [
            "(617) 555-0101",
            "617-555-0101",
            "617.555.0101",
            "6175550101",
            "+1 617 555 0101",
            "1 (617) 555-0101",
            " +16175550101 ",
        ] {
            assert_eq!(
                Phone::parse(input).unwrap().as_str(),
                "+16175550101",
                "{input}"
            );
        }
    }

    #[test]
    fn international_numbers_keep_their_country() {
        assert_eq!(
            Phone::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(
            Phone::parse("+1 416 555 0199").unwrap().as_str(),
            "+14165550199"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for input in [
            "",
            "   ",
            "hello",
            "555-0101",
            "123",
            "+1 111 555 0101",
            "12345678901234567890",
        ] {
            assert!(Phone::parse(input).is_err(), "{input:?} should be refused");
        }
    }

    #[test]
    fn fast_path_agrees_with_the_full_parser() {
        for code in US_AREA_CODES {
            for local in ["2345678", "5550123", "9998888"] {
                let input = format!("{code}{local}");
                let fast = nanp_fast_path(&input).expect("fast path takes US numbers");
                let full = phonenumber::parse(Some(phonenumber::country::Id::US), &input).unwrap();
                assert!(
                    phonenumber::is_valid(&full),
                    "{input} should be valid for the metadata too"
                );
                assert_eq!(
                    fast,
                    full.format().mode(phonenumber::Mode::E164).to_string()
                );
            }
        }
    }

    #[test]
    fn sorted_area_codes() {
        assert!(US_AREA_CODES.windows(2).all(|w| w[0] < w[1]));
    }
}
