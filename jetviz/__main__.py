from jetviz.cli import main

raise SystemExit(main())
