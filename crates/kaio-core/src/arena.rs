//! Fixed-capacity slot table with generation-tagged keys.
//!
//! A key is `generation << 32 | index`. It travels to the kernel as `aio_data` and comes back
//! in the `io_event`; [`Arena::remove`] accepts it only if the slot still holds the same
//! generation, so a stale or duplicated event can never settle a request that reused the slot.

/// A slot table holding at most `capacity` values.
#[derive(Debug)]
pub struct Arena<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Arena<T> {
    /// Preallocates `capacity` empty slots.
    #[must_use]
    pub fn with_capacity(capacity: u32) -> Self {
        let slots = (0..capacity)
            .map(|_| Slot {
                generation: 0,
                value: None,
            })
            .collect();
        // Pop from the end: hand out low indexes first.
        let free = (0..capacity).rev().collect();
        Self { slots, free }
    }

    /// Number of occupied slots.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Number of slots, occupied or not.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    #[must_use]
    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Stores `value`, returning its key, or gives the value back when every slot is taken.
    pub fn insert(&mut self, value: T) -> Result<u64, T> {
        let Some(index) = self.free.pop() else {
            return Err(value);
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.value.is_none());
        slot.value = Some(value);
        Ok((u64::from(slot.generation) << 32) | u64::from(index))
    }

    /// The value under `key`, if the key is current.
    #[must_use]
    pub fn get(&self, key: u64) -> Option<&T> {
        let slot = self.slots.get((key & 0xffff_ffff) as usize)?;
        if u64::from(slot.generation) != key >> 32 {
            return None;
        }
        slot.value.as_ref()
    }

    /// Takes the value under `key` and retires the key. A stale key returns `None`.
    pub fn remove(&mut self, key: u64) -> Option<T> {
        let index = (key & 0xffff_ffff) as u32;
        let slot = self.slots.get_mut(index as usize)?;
        if u64::from(slot.generation) != key >> 32 {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        Some(value)
    }

    /// Keys and values of every occupied slot.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value
                .as_ref()
                .map(|v| ((u64::from(s.generation) << 32) | i as u64, v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_roundtrip() {
        let mut a = Arena::with_capacity(2);
        let k1 = a.insert("a").unwrap();
        let k2 = a.insert("b").unwrap();
        assert!(a.is_full());
        assert_eq!(a.insert("c"), Err("c"));
        assert_eq!(a.remove(k1), Some("a"));
        assert_eq!(a.get(k2), Some(&"b"));
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn stale_key_is_rejected_after_reuse() {
        let mut a = Arena::with_capacity(1);
        let k1 = a.insert(1).unwrap();
        assert_eq!(a.remove(k1), Some(1));
        let k2 = a.insert(2).unwrap();
        assert_ne!(k1, k2, "the reused slot has a new generation");
        assert_eq!(
            a.remove(k1),
            None,
            "a duplicate event for the old request is ignored"
        );
        assert_eq!(a.get(k2), Some(&2));
        assert_eq!(a.remove(k2), Some(2));
        assert_eq!(a.remove(k2), None, "a key settles once");
    }

    #[test]
    fn out_of_range_key_is_ignored() {
        let mut a: Arena<u8> = Arena::with_capacity(1);
        assert_eq!(a.remove(99), None);
        assert!(a.get(u64::MAX).is_none());
        assert!(a.is_empty());
    }
}
