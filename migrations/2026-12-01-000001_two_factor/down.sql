DROP TABLE IF EXISTS backup_codes;
DROP TABLE IF EXISTS second_factors;
