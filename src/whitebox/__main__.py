from whitebox.cli import main

raise SystemExit(main())
