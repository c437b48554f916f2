package main

import (
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite"
)

// tamperSQLite runs one statement against a store file, as an attacker
// with write access to central's disk would.
func tamperSQLite(path, stmt string) error {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := db.Exec(stmt)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s changed nothing", stmt)
	}
	return nil
}
