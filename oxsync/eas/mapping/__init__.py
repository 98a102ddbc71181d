"""ActiveSync data-class mappers: one data-driven table per class (Contacts, Calendar, Tasks)."""
